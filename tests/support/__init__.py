"""What the tests share, imported as `support.<module>` (pytest puts tests/ on sys.path):

- `helpers`: toolchain gating (skip, or fail under QUILTC_REQUIRE_TOOLCHAINS=1), the oracle
  comparison every schedule test makes, tolerances and random arrays;
- `programs`, `ragged_programs`, `cuda_kernels`: the dense, ragged and CUDA programs many
  tests schedule, with their numpy references;
- `tiers`: what the `ci` and `dev` tiers (QUILTC_TEST_PROFILE) run: hypothesis budgets
  (`examples(n)`) and parametrized cases.
"""
