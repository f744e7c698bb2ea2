/**
 * Messages and data types of the runtime's actors: sealed command interfaces and immutable records. Holds data only; behaviours live in the actors module (issue 3 fills it).
 */
package dev.mpsactors.protocol;
