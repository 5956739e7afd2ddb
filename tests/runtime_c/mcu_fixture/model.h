/* A hand-written stand-in for a generated model: a linear classifier over 16 int8 inputs,
   used to test the Cortex-M project builder without the model compiler. */
#ifndef QUILTC_MODEL_H
#define QUILTC_MODEL_H
#include <stdint.h>

#define QUILTC_INPUT_SIZE 16
#define QUILTC_OUTPUT_SIZE 4

int quiltc_model_run(const int8_t *in, int8_t *out);

#endif
