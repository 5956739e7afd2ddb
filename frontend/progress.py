"""What a long job tells the person waiting for it: progress bars and the build log.

Training, k-means, fine-tuning, emulator batches, tuning and benchmarks wrap their loops in
`progress_bar`: a tqdm bar on standard error while it is a terminal, nothing otherwise or
with `quiet(True)` (`quiltc --quiet`, or QUILTC_QUIET=1). QUILTC_LOG=info shows each
compiler and emulator command line quiltc runs and each build-cache hit; QUILTC_LOG=debug
also the cache's keys and paths. Modules log through `logging.getLogger(__name__)`, so the
records belong to the `quiltc` logger and an application may route them as it likes.
"""

import logging
import os
import sys

from tqdm import tqdm

QUIET_VARIABLE = "QUILTC_QUIET"
LOG_VARIABLE = "QUILTC_LOG"
LOG_LEVELS = {"info": logging.INFO, "debug": logging.DEBUG}


def quiet(silent=True):
    """Silence (or allow again) every progress bar of this process and its children."""
    if silent:
        os.environ[QUIET_VARIABLE] = "1"
    else:
        os.environ.pop(QUIET_VARIABLE, None)


def bars_shown():
    """Whether progress bars are drawn: standard error is a terminal and nobody asked for
    quiet."""
    return sys.stderr.isatty() and os.environ.get(QUIET_VARIABLE, "") in ("", "0")


def progress_bar(iterable=None, total=None, description="", unit="it", shown=None):
    """`iterable` wrapped in a tqdm bar (or a bar to `update` by hand when it is None),
    drawn when `shown` says so, by default when `bars_shown()`; the bar disappears when
    the job ends."""
    shown = bars_shown() if shown is None else shown
    return tqdm(iterable, total=total, desc=description, unit=unit, file=sys.stderr,
                disable=not shown, leave=False, dynamic_ncols=True)


def configure_logging(setting=None):
    """Send the `quiltc` logger's records to standard error at the level QUILTC_LOG (or
    `setting`) names: "info" or "debug"; empty leaves logging as the application set it."""
    setting = (os.environ.get(LOG_VARIABLE, "") if setting is None else setting).lower()
    if not setting:
        return
    logger = logging.getLogger("quiltc")
    if setting not in LOG_LEVELS:
        print(f"quiltc: {LOG_VARIABLE}={setting!r} is not a level; use info or debug",
              file=sys.stderr)
        return
    logger.setLevel(LOG_LEVELS[setting])
    if not any(getattr(handler, "quiltc_log", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("quiltc %(levelname)s %(name)s: %(message)s"))
        handler.quiltc_log = True
        logger.addHandler(handler)
