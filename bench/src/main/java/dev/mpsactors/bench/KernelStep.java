package dev.mpsactors.bench;

import dev.mpsactors.nativemps.KernelArgs;
import dev.mpsactors.nativemps.Pipeline;

/**
 * One kernel of a request, built once per client and encoded again for every request (the arguments only
 * name buffers, so a client reuses them). {@code layerNorm} marks the kernels the lock-based baseline runs
 * under its process-wide LayerNorm lock.
 */
record KernelStep(Pipeline pipeline, KernelArgs args, boolean layerNorm) {}
