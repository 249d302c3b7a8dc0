"""Task ``label_free`` as the recipe sees it: its section ``probe.label_free.*``; probe.every may run it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cltt.errors import RecipeError
from cltt.recipe.checks import check_max, check_unique
from cltt.recipe.probes import TaskSection, declare_task

# the most probe.label_free.pairs: uniformity gathers both frames' features of every pair, two
# [pairs, D] float32 arrays (8 D bytes a pair: 4 GB at D = 512 for 10^6 pairs, 400 MB for the
# default 10^5), and takes every pair when N(N-1)/2 <= pairs
MAX_PAIRS = 1_000_000


def gap_name(gap: float) -> str:
    """``1s``, ``0.5s``: a gap in column names (``%g``: 0.2 and 0.2000001 both print ``0.2s``, so
    :meth:`LabelFreeConfig.validate` refuses gaps whose names collide)."""
    return f"{gap:g}s"


@dataclass
class LabelFreeConfig:
    """``probe.label_free.*``: ``held_out`` the fraction of clips measured (drawn with
    ``probe.split_seed``; 1.0 every clip), ``gaps`` the time gaps of temporal retrieval in
    seconds, ``recall_at`` its k, ``queries`` the most query frames (drawn seeded), ``pairs`` the
    most frame pairs for uniformity (at most :data:`MAX_PAIRS`: each pair gathers two D-wide
    feature rows), ``rankme_rounds`` the most bootstrap resamples behind RankMe's interval (each
    an eigendecomposition of a D x D matrix; at least 2)."""

    held_out: float = 0.2
    gaps: list[float] = field(default_factory=lambda: [1.0, 5.0, 30.0])
    recall_at: list[int] = field(default_factory=lambda: [1, 5])
    queries: int = 4096
    pairs: int = 100_000  # the most frame pairs uniformity averages, at most 1,000,000 (memory: 8 x D bytes a pair)
    rankme_rounds: int = 20  # each a K D^2 sum and a D x D eigendecomposition (0.1-0.3 s CPU at D = 512)

    def validate(self, at: str) -> None:
        if not 0 < self.held_out <= 1:
            raise RecipeError(f"recipe key '{at}.held_out' must be in (0, 1], got {self.held_out}")
        if not self.gaps or not all(0 < g < float("inf") for g in self.gaps):
            raise RecipeError(f"recipe key '{at}.gaps' must list time gaps > 0 in seconds, got {self.gaps}")
        if not self.recall_at or any(k < 1 for k in self.recall_at):
            raise RecipeError(f"recipe key '{at}.recall_at' must list k >= 1, got {self.recall_at}")
        check_unique(self.gaps, f"{at}.gaps")
        names = [gap_name(g) for g in self.gaps]
        same = sorted({n for n in names if names.count(n) > 1})
        if same:
            clash = [g for g in self.gaps if gap_name(g) in same]
            raise RecipeError(f"recipe key '{at}.gaps' holds gaps {clash} that print alike ({', '.join(same)}) and "
                              "would share one table row and column; keep one of them")
        check_unique(self.recall_at, f"{at}.recall_at")
        for key in ("queries", "pairs"):
            if getattr(self, key) < 1:
                raise RecipeError(f"recipe key '{at}.{key}' must be >= 1, got {getattr(self, key)}")
        check_max(self.pairs, f"{at}.pairs", MAX_PAIRS, "uniformity gathers both frames' features of every "
                  "pair (8 x D bytes a pair: 4 GB at D = 512 for the most); the default is 100,000")
        if self.rankme_rounds < 2:  # 1 resample gave a zero-width interval, 0 none at all
            raise RecipeError(f"recipe key '{at}.rankme_rounds' must be >= 2 (resamples behind RankMe's 95% interval; "
                              f"the default is 20), got {self.rankme_rounds}")


@declare_task("label_free", config=LabelFreeConfig)
class LabelFree(TaskSection):
    """No labels needed: RankMe, alignment/uniformity, temporal retrieval, spread."""

    runs_during_training = True
