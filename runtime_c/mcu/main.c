/* Runs every embedded test input through the model and prints its predicted class (the
   index of the largest output, the first on ties), one per line, then `done`. */
#include <stdint.h>

#include "model.h"
#include "semihost.h"
#include "test_inputs.h"

static int8_t output[QUILTC_OUTPUT_SIZE];

static int predicted_class(const int8_t *scores, int count)
{
    int best = 0;
    for (int i = 1; i < count; i++)
        if (scores[i] > scores[best])
            best = i;
    return best;
}

int main(void)
{
#if QUILTC_TEST_COUNT > 0
    for (int t = 0; t < QUILTC_TEST_COUNT; t++) {
        if (quiltc_model_run(quiltc_test_inputs[t], output) != 0) {
            quiltc_semihost_write0("error: quiltc_model_run failed\n");
            return 1;
        }
        quiltc_semihost_write_int(predicted_class(output, QUILTC_OUTPUT_SIZE));
        quiltc_semihost_write0("\n");
    }
#endif
    quiltc_semihost_write0("done\n");
    return 0;
}
