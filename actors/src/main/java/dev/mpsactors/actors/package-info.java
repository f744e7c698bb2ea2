/**
 * The owner actors (streams, event pool, kernel library, allocator, stream pool) and the public embedding API (issue 3 fills it).
 */
package dev.mpsactors.actors;
