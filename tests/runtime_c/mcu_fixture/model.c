#include "model.h"

/* weight[c][i] = (7c + 3i) mod 11 - 5; the test computes the same numbers in numpy. */
static int weight(int c, int i)
{
    return (7 * c + 3 * i) % 11 - 5;
}

int quiltc_model_run(const int8_t *in, int8_t *out)
{
    for (int c = 0; c < QUILTC_OUTPUT_SIZE; c++) {
        int32_t acc = 0;
        for (int i = 0; i < QUILTC_INPUT_SIZE; i++)
            acc += weight(c, i) * in[i];
        acc >>= 4;
        out[c] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
    }
    return 0;
}
