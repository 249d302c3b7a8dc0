"""How many BLAS threads the probes' small dense solves get.

A least-squares or logistic fit on a few thousand samples is dominated by BLAS calls on small
matrices, where many threads mostly wait on each other: on a shared 2-core machine a
scikit-learn fit of 1,000 x 512 features took 27 s with the default threads and 1.9 s with one.
Problems above ``SMALL`` matrix entries keep the default, where threads pay.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

SMALL = 2**22  # entries of the feature matrix (e.g. 8,192 samples x 512 features)


def blas_threads_for(entries: int):
    """Context manager: one BLAS thread for a problem of ``entries`` matrix entries, else the default."""
    return threadpool_limits(limits=1, user_api="blas") if entries <= SMALL else contextlib.nullcontext()
