"""C helper functions that generated kernels call, emitted only when a kernel uses them.

They exist where the C library's own function is slow or differs from numpy: `expf`,
`tanhf` and `erff` are library calls gcc cannot vectorize without -ffast-math, `fmaxf`
drops NaN where `np.maximum` keeps it. Each helper is plain C99 that gcc inlines and
vectorizes.
"""

ALLOC = """static void* quiltc_alloc(size_t bytes)
{
    void* memory = NULL;
    if (posix_memalign(&memory, 64, bytes > 0 ? bytes : 64) != 0) {
        fprintf(stderr, "quiltc: out of memory allocating %zu bytes\\n", bytes);
        abort();
    }
    return memory;
}"""

# A whole-call buffer's memory kept for the next call, one block per buffer (its `slot`):
# fresh memory costs a page fault and a cleared page for every page first written (the
# attention kernel's length x length intermediates, mapped anew each call, spent 20% of
# its time clearing pages). The block's size stands in its first 64 bytes; calls on
# several threads at once each take the slot's block or make their own (an atomic
# exchange), and a give over a kept block frees the older. Blocks over 256 MiB are not
# kept, and none under AddressSanitizer, where a larger block would hide an overflow.
KEPT_BLOCKS = """#if defined(__SANITIZE_ADDRESS__)
enum { QUILTC_KEPT_LIMIT = 0 };
#else
enum { QUILTC_KEPT_LIMIT = 1 << 28 };
#endif

static void* quiltc_take(void** slot, size_t bytes)
{
    size_t* block = __atomic_exchange_n((size_t**)slot, NULL, __ATOMIC_ACQUIRE);
    if (block == NULL || block[0] < bytes) {
        free(block);
        block = quiltc_alloc(64 + bytes);
        block[0] = bytes;
    }
    return (char*)block + 64;
}

static void quiltc_give(void** slot, void* memory)
{
    size_t* block = (size_t*)((char*)memory - 64);
    if (block[0] > QUILTC_KEPT_LIMIT) {
        free(block);
        return;
    }
    free(__atomic_exchange_n((size_t**)slot, block, __ATOMIC_RELEASE));
}"""

def _reduced(argument, exponent_bias):
    """C lines splitting float `argument` into n ln 2 + r, n whole and |r| <= ln(2) / 2,
    and setting r2 = r * r and `biased` to n + `exponent_bias` (in its low 9 bits, the
    bits a shift by 23 moves into a float's exponent field). n is rounded by adding and
    removing 1.5 * 2^23 + `exponent_bias` (floorf would not vectorize without
    -ffast-math); the sum's low mantissa bits then hold n + `exponent_bias`, so the
    scalings by 2^n need no conversion of n to an integer. ln 2 is split in two parts
    (Cody and Waite) so r keeps its precision."""
    shifter = f"{12582912 + exponent_bias}.0f"
    return f"""\
    float shifted = {argument} * 1.44269504088896341f + {shifter};
    float n = shifted - {shifter};
    float r = {argument} - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float r2 = r * r;
    uint32_t biased;
    memcpy(&biased, &shifted, sizeof biased);
"""


def _quartic(coefficients):
    """C lines setting p to the polynomial in r with `coefficients` (constant first, C
    float literals), by Estrin's scheme: two short chains of multiply-adds instead of one
    long one (the polynomial's latency, not its multiply-adds, bounded the exp loops)."""
    c0, c1, c2, c3, c4 = coefficients
    return f"""\
    float low = {c1} * r + {c0};
    float high = {c3} * r + {c2};
    float p = ({c4} * r2 + high) * r2 + low;
"""


# C lines setting `scale` to 2^(biased - 127), an exponent field made by a shift (_reduced).
_SCALE = """\
    uint32_t scale_bits = biased << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
"""


# exp(x) = 2^n * exp(r) with x = n ln 2 + r (_reduced); exp(r) = 1 + r + r^2 P(r) with P
# of degree 4 (_quartic); 2^n is applied as two exponent-field scalings, 2^floor(n/2)
# and 2^ceil(n/2), so results down to the subnormals stay exact: `biased` holds n + 254,
# and its halves (each n's half plus 127) come by shifts alone. x is clamped to [-104, 89]
# first, where exp already rounds to 0 and overflows to infinity, so the special cases
# need no masks of their own: the clamps keep a NaN (a comparison with NaN is false),
# and NaN times any scale is NaN; each clamp compares x itself, so the two are
# independent selects (nested, gcc spent six instructions on them, not four).
# P is our own near-minimax fit, made like erf's below (Lawson's iteratively reweighted
# least squares against mpmath's exp, weighted by relative error, coefficients rounded to
# float32 from the lowest, the higher ones refitted after each): within 3.2e-9 of exp in
# exact arithmetic; in float32, every input in [-104, 88.72] gives a result within 1.03
# ulp of exp (measured against libm's double exp over every float32 there), as the
# degree-5 polynomial of the Cephes library's expf that it replaces did, in 21 vector
# instructions instead of 28.
EXP_COEFFICIENTS = ("4.99999940e-1f", "1.66665226e-1f", "4.16682921e-2f", "8.36853217e-3f",
                    "1.38182787e-3f")


def _exp_reduced(argument, exponent_bias):
    """C lines setting y = exp(r) for `argument` = n ln 2 + r, and `biased` to
    n + `exponent_bias` (_reduced): exp(`argument`) is y times 2^n, scaled by the caller."""
    return (_reduced(argument, exponent_bias) + _quartic(EXP_COEFFICIENTS)
            + "    float y = (p * r2 + r) + 1.0f;\n")


EXPF = f"""float quiltc_expf(float x)
{{
    float below_max = x > 89.0f ? 89.0f : x;
    x = x < -104.0f ? -104.0f : below_max;
{_exp_reduced("x", 254)}\
    uint32_t first_bits = biased >> 1 << 23, second_bits = (biased - (biased >> 1)) << 23;
    float first_scale, second_scale;
    memcpy(&first_scale, &first_bits, sizeof first_scale);
    memcpy(&second_scale, &second_bits, sizeof second_scale);
    return y * first_scale * second_scale;
}}"""

# exp(x) for x <= 0, such as a softmax's x - max(x) (qc.exp_nonpositive): quiltc_expf with
# no overflow path. 2^n is applied as 2^(n + 64), then 2^-64: the first product is exact,
# the second rounds once, so results down to the subnormals stay exact with one exponent
# field, made by a shift (`biased` holds n + 64 + 127). x is clamped below at -104 only.
# Every x up to 44 gives quiltc_expf's bits (n + 64 still fits the exponent field), in 16
# vector instructions instead of 21; above 44 the results are wrong.
EXPF_NONPOSITIVE = f"""float quiltc_expf_nonpositive(float x)
{{
    x = x < -104.0f ? -104.0f : x;
{_exp_reduced("x", 191)}{_SCALE}\
    return y * scale * 0x1p-64f;
}}"""

# tanh and erf are computed on |x| and take x's sign bit back at the end, so -0 stays -0
# and NaN stays NaN. Each computes both of its ranges' formulas and keeps one through a
# bit mask (selects became branches, which stop the vectorizer), and neither calls a
# function.


def _odd_function(name, small_limit, body):
    """A float32 helper for an odd function: `body` computes `small` and `large` from
    a = |x|; the result is `small` below `small_limit`, else `large`, with x's sign bit."""
    return f"""float {name}(float x)
{{
    int32_t x_bits, small_bits, large_bits;
    memcpy(&x_bits, &x, sizeof x_bits);
    int32_t a_bits = x_bits & INT32_MAX;
    float a;
    memcpy(&a, &a_bits, sizeof a);
{body}    memcpy(&small_bits, &small, sizeof small_bits);
    memcpy(&large_bits, &large, sizeof large_bits);
    int32_t is_small = -(int32_t)(a < {small_limit});
    int32_t result_bits = (small_bits & is_small) | (large_bits & ~is_small)
                          | (x_bits & INT32_MIN);
    float result;
    memcpy(&result, &result_bits, sizeof result);
    return result;
}}"""


# tanh(a) = e / (e + 2) with e = expm1(2a), computed like quiltc_expf (2a = n ln 2 + r,
# expm1(r) = r + r^2 P(r) with P of degree 4, our own near-minimax fit made as expf's,
# within 1.4e-8 of expm1 in exact arithmetic), then e = 2^n expm1(r) + (2^n - 1): no
# cancellation anywhere, one scaling (2^n stays normal for 2a <= 20), one division. a is
# clamped at 10 (2a at 20, 0x41a00000; a bit mask, as erf's clamp), past which e + 2
# rounds to e and the result to exactly 1. Below 2^-12, tanh(a) rounds to a itself, which
# e / (e + 2) misses by the rounding of e + 2. Every float32 input gives a result within
# 1.82e-7 of tanh, relatively (measured against libm's double tanh): a SIMD loop of it
# runs 29 vector instructions per vector (load and store included); the Cephes polynomial
# below 0.625 with 1 - 2 / (exp(2a) + 1) above, both computed for every element, ran 44.
TANHF = _odd_function("quiltc_tanhf", "2.44140625e-4f", """\
    float small = a, twice = a + a, t;
    int32_t twice_bits, clamped = -(int32_t)(a > 10.0f);
    memcpy(&twice_bits, &twice, sizeof twice_bits);
    twice_bits = (twice_bits & ~clamped) | (0x41a00000 & clamped);
    memcpy(&t, &twice_bits, sizeof t);
""" + _reduced("t", 127) + _quartic(("4.99999970e-1f", "1.66665465e-1f", "4.16674465e-2f",
                                     "8.36625136e-3f", "1.38693780e-3f")) + _SCALE + """\
    float e = scale * (p * r2 + r) + (scale - 1.0f);
    float large = e / (e + 2.0f);
""")

# Below 0.75, erf(x) = x * P(x^2) (degree 5); from 0.75 on, erf(x) = 1 - exp(Q(x)) with
# Q of degree 6 following log(erfc(x)), and x clamped at 4 (0x40800000), where erfc(4) <
# 2^-25 already rounds the result to 1; the clamp is a bit mask too, as a select there
# became a branch on AVX2. P and Q are our own near-minimax fits, made with numpy by
# Lawson's iteratively reweighted least squares on a dense grid against mpmath's erf and
# erfc, weighted to minimise erf's relative error (by x / erf(x) for P on [0, 0.75], by
# erfc(x) / erf(x) for Q on [0.75, 4]), then rounded to float32 one coefficient at a time
# from the lowest, the higher ones refitted after each. In exact arithmetic they are within
# 5.4e-8 (P, bounded by 2/sqrt(pi) rounded to float32) and 3e-9 (Q) of erf, relatively;
# in float32, every input with |erf(x)| >= 1e-30 gives a result within 1.7e-7 of erf
# (measured against libm's double erf); below, results are subnormal and round as such.
# exp(Q) is quiltc_expf's computation with one scaling and no clamps: Q stays within
# [-18, 0] for t in [0, 4], so 2^n and the result are normal, and the clamps and the second
# scaling would change no bit (every float32 input gives the bits it gave with
# quiltc_expf's call): 39 vector instructions a vector in a SIMD loop instead of 47.
ERFF = _odd_function("quiltc_erff", "0.75f", """\
    float z = a * a;
    float odd = -1.72479355e-4f;
    odd = odd * z + 4.40339465e-3f;
    odd = odd * z - 2.64819134e-2f;
    odd = odd * z + 1.12762146e-1f;
    odd = odd * z - 3.76121074e-1f;
    odd = odd * z + 1.12837911e+0f;
    float small = odd * a;
    int32_t clamped = -(int32_t)(a > 4.0f), t_bits = (a_bits & ~clamped) | (0x40800000 & clamped);
    float t;
    memcpy(&t, &t_bits, sizeof t);
    float q = 2.13192441e-4f;
    q = q * t - 3.20592057e-3f;
    q = q * t + 2.28487290e-2f;
    q = q * t - 1.05165169e-1f;
    q = q * t - 6.35841370e-1f;
    q = q * t - 1.12843359e+0f;
    q = q * t - 2.13975291e-5f;
""" + _exp_reduced("q", 127) + _SCALE + """\
    float large = 1.0f - y * scale;
""")

# sigmoid(x) = t / (1 + t) below 0 and 1 / (1 + t) from 0 on, with t = exp(-|x|) from
# quiltc_expf_nonpositive: 16 vector instructions for the exponential where
# 1 / (1 + exp(-x)) spends quiltc_expf's 21 (its overflow path, taken for every negative
# x), and no infinity on the way. From 0 on the bits are those of 1 / (1 + exp(-x)); below,
# the same function without dividing by exp(|x|). -|x| and the numerator come by bit masks
# (a select became a branch on AVX2); a NaN fails x >= 0 and takes t, NaN.
SIGMOIDF = """float quiltc_sigmoidf(float x)
{
    int32_t x_bits, t_bits, numerator_bits;
    memcpy(&x_bits, &x, sizeof x_bits);
    int32_t negative_bits = x_bits | INT32_MIN;
    float negative, t, numerator;
    memcpy(&negative, &negative_bits, sizeof negative);
    t = quiltc_expf_nonpositive(negative);
    memcpy(&t_bits, &t, sizeof t_bits);
    int32_t is_positive = -(int32_t)(x >= 0.0f);
    numerator_bits = (0x3f800000 & is_positive) | (t_bits & ~is_positive);
    memcpy(&numerator, &numerator_bits, sizeof numerator);
    return numerator / (1.0f + t);
}"""

# The float32 helpers of the C target, by name.
FLOAT_HELPERS = {"quiltc_tanhf": TANHF, "quiltc_erff": ERFF,
                 "quiltc_expf_nonpositive": EXPF_NONPOSITIVE}


def sigmoid(name, c_type, one, exp):
    """`name(x) = 1 / (1 + exp(-x))` on `c_type`, with the literal `one` and `exp` spelling."""
    return f"{c_type} {name}({c_type} x) {{ return {one} / ({one} + {exp}(-x)); }}"


def select(name, c_type):
    """`condition ? then : otherwise` on values already computed (see render_select)."""
    return (f"{c_type} {name}(int condition, {c_type} then, {c_type} otherwise) "
            "{ return condition ? then : otherwise; }")


# Two-operand index operations as C expressions of a and b; b > 0 for the floor and the
# remainder, which C's truncating / and % only give for a >= 0. The kernels' helper
# functions and the fused entry point's macros (frontend/graph/entry.py) both spell these.
INDEX_OPERATIONS = {"min": "a < b ? a : b", "max": "a > b ? a : b",
                    "floordiv": "a / b - (a % b < 0)", "mod": "a % b + (a % b < 0 ? b : 0)"}


def index_helper(operation, c_type="int64_t"):
    """(name, C definition) of the helper for `operation` of INDEX_OPERATIONS on two index
    values of `c_type`."""
    name = f"quiltc_{operation}_index"
    formula = INDEX_OPERATIONS[operation]
    return name, f"{c_type} {name}({c_type} a, {c_type} b) {{ return {formula}; }}"


def index_helpers(text, c_type="int64_t"):
    """{name: C definition} of the index helpers that C index text `text` calls."""
    definitions = dict(index_helper(operation, c_type) for operation in INDEX_OPERATIONS)
    return {name: definition for name, definition in definitions.items() if name + "(" in text}


def scalar_extremum(name, c_type, pick, is_float):
    """max or min of two values; floats propagate NaN like numpy's maximum/minimum."""
    test = f"(a {pick} b || a != a)" if is_float else f"a {pick} b"
    return f"{c_type} {name}({c_type} a, {c_type} b) {{ return {test} ? a : b; }}"


def scalar_abs(name, c_type, unsigned_type):
    """|x|; the minimum of a wide signed type wraps through `unsigned_type` like numpy."""
    negated = f"({c_type})(0u - ({unsigned_type})x)" if unsigned_type else f"({c_type})(-x)"
    return f"{c_type} {name}({c_type} x) {{ return x < 0 ? {negated} : x; }}"


def scalar_divide(name, c_type, signed, unsigned_type):
    """a / b truncating toward zero, defined for every input as numpy defines integer
    division: a zero divisor gives 0, and the minimum over -1 wraps to itself (through
    `unsigned_type` where C would overflow; narrow types wrap in their cast)."""
    body = "b == 0 ? 0 : "
    if signed:
        negated = f"({c_type})(0u - ({unsigned_type})a)" if unsigned_type else f"({c_type})(-a)"
        body += f"b == -1 ? {negated} : "
    return f"{c_type} {name}({c_type} a, {c_type} b) {{ return {body}({c_type})(a / b); }}"


def scalar_shift(name, c_type, operation, width, signed):
    """a << b or a >> b for any count b, as numpy defines them: a count outside [0, width)
    (`width` of the type C promotes to) shifts every bit out, leaving 0, or the sign for
    a right shift of a negative value. Left shifts run through unsigned, so they wrap."""
    outside = "b < 0 || b >= " + str(width)
    if operation == "shl":
        shifted = f"({c_type})((uint{max(width, 32)}_t)a << b)"
        return f"{c_type} {name}({c_type} a, {c_type} b) {{ return ({outside}) ? 0 : {shifted}; }}"
    emptied = "(a < 0 ? -1 : 0)" if signed else "0"
    return (f"{c_type} {name}({c_type} a, {c_type} b) "
            f"{{ return ({outside}) ? {emptied} : ({c_type})(a >> b); }}")


# CMSIS-NN arm_nn_requantize: arm_nn_doubling_high_mult_no_sat (rounding offset 2^30,
# no nudge for negative products), then arm_nn_divide_by_power_of_two (ties away from
# zero). The left shift runs through uint32_t so an overflow wraps instead of being
# undefined. The round-up test is the sign of threshold - remainder (both within
# [0, 2^31), so the difference cannot overflow) rather than a comparison, which Cortex-M
# spells as an IT block: two instructions fewer per output.
REQUANTIZE = """int32_t quiltc_requantize(int32_t value, int32_t multiplier, int32_t shift)
{
    int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    int32_t scaled = (int32_t)((uint32_t)value << left);
    int32_t high = (int32_t)(((int64_t)scaled * multiplier + (INT64_C(1) << 30)) >> 31);
    int32_t mask = (int32_t)((UINT32_C(1) << right) - 1u);
    int32_t result = high >> right;
    int32_t threshold = (mask >> 1) + (result < 0);
    return result - ((threshold - (high & mask)) >> 31);
}"""

# The Arm SMLAD instruction spelled in portable C: the products of the signed 16-bit
# halves, added to acc with int32 wraparound.
_SMLAD_HEAD = "int32_t quiltc_smlad(int32_t a, int32_t b, int32_t acc)\n{\n"
_SMLAD_PORTABLE = """    int32_t low = (int32_t)(int16_t)a * (int16_t)b;
    int32_t high = (int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)low + (uint32_t)high);
"""
SMLAD = _SMLAD_HEAD + _SMLAD_PORTABLE + "}"
# On Arm cores with the DSP extension (Cortex-M4/M7/M33) it is one instruction.
SMLAD_ACLE = (_SMLAD_HEAD + "#if defined(__ARM_FEATURE_DSP)\n"
              "    return (int32_t)__smlad((uint32_t)a, (uint32_t)b, (uint32_t)acc);\n#else\n"
              + _SMLAD_PORTABLE + "#endif\n}")

INTEGER_CALLS = {"requantize": REQUANTIZE, "smlad": SMLAD}

