"""The retrieval readout: recall@1, recall@5 and mAP of held-out (val, test) samples against
the train samples by label, on the cosine space of :class:`ReadoutData` (:mod:`cltt.eval.retrieval`)."""

from __future__ import annotations

from cltt.eval.readouts import Readout, ReadoutData, ReadoutScores, register_readout


@register_readout("retrieval")
class Retrieval(Readout):
    """Recall@1, recall@5 and mAP of val and test samples ranking the train samples by cosine."""

    @staticmethod
    def score(data: ReadoutData) -> list[ReadoutScores]:
        from cltt.eval.retrieval import RECALL_AT, retrieval_scores

        space, train = data.cosine_space, data.train
        held_out = {s: data.rows[s] for s in ("val", "test")}
        found = {s: retrieval_scores(space[train], data.targets[train], space[r], data.targets[r]) if len(r) else None
                 for s, r in held_out.items()}
        detail = f"vs train frames{data.cosine_note}"
        return [ReadoutScores(metric, {"train": None, **{s: None if f is None else f[metric] for s, f in found.items()}},
                              detail) for metric in (*(f"recall@{k}" for k in RECALL_AT), "mAP")]
