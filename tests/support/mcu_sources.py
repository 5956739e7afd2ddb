"""C the Cortex-M emulation tests build: a plain loop whose count and result both tests
of unicorn runs know."""

# An int8 dot product: result sum(a[i] * b[i]), one multiply-accumulate a pass.
DOT_INT8 = r"""
#include <stdint.h>

int32_t dot_int8(const int8_t *a, const int8_t *b, int n)
{
    int32_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}
"""
