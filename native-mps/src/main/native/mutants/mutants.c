/* Hazard mutants (see mutants.h); this file is compiled into libmpsnative_mutants.so only. */
#include "mutants/mutants.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t selected_once = PTHREAD_ONCE_INIT;
static int selected;

static void select_mutant(void) {
  const char* value = getenv("MPS_MUTANT");
  selected = value ? atoi(value) : 0;
}

int mps_mutant_active(int mutant) {
  pthread_once(&selected_once, select_mutant);
  return selected == mutant;
}

/* Mutant 6: the fork's Normalization.mm serialised every LayerNorm of the process behind one mutex. */
static pthread_mutex_t layer_norm_mutex = PTHREAD_MUTEX_INITIALIZER;

static int is_layer_norm(const char* kernel) { return strncmp(kernel, "layernorm", 9) == 0; }

void mps_mutant_kernel_enter(const char* kernel) {
  if (mps_mutant_active(6) && is_layer_norm(kernel)) pthread_mutex_lock(&layer_norm_mutex);
}

void mps_mutant_kernel_exit(const char* kernel) {
  if (mps_mutant_active(6) && is_layer_norm(kernel)) pthread_mutex_unlock(&layer_norm_mutex);
}

/* Mutant 4: give another thread the core in the middle of an update of the open command buffer. */
void mps_mutant_encoder_window(void) {
  if (mps_mutant_active(4)) sched_yield();
}
