/*
 * Hazard mutants: the fork's behaviour put back, for proving that the hazard tests fail against it.
 * Compiled only into libmpsnative_mutants.so (CMake option MPS_MUTANTS, a test-only build), never into the
 * release library; MPS_MUTANT=<n> in the environment picks the mutant at run time (unset: none).
 *
 *   4  the encoder shared without its owner: a pause inside the open command buffer's updates, which is
 *      harmless for one owner and widens the window in which two threads encoding at once corrupt it
 *   6  a process-wide LayerNorm mutex held around each LayerNorm kernel call
 */
#ifndef MPS_MUTANTS_H
#define MPS_MUTANTS_H

int mps_mutant_active(int mutant);
void mps_mutant_kernel_enter(const char* kernel);
void mps_mutant_kernel_exit(const char* kernel);
void mps_mutant_encoder_window(void);

#endif
