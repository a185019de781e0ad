"""The protocol both engine configs follow: dicts, replacement and sizing for a workload."""

import dataclasses

from .bits import pow2_at_least

__all__ = ["EngineConfig"]


class EngineConfig:
    """Mixed into each engine's frozen config dataclass (:class:`hw.eie.EieConfig`,
    :class:`hw.systolic.SystolicConfig`).

    An engine names the memory depths :meth:`fit` may size (:attr:`DEPTHS`) and says what a
    workload needs of them (:meth:`needs`); everything else is common.
    """

    #: Memory-depth fields that :meth:`fit` sizes for a workload.
    DEPTHS: tuple[str, ...] = ()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """The config of a dict of fields (a manifest's, a job's); unknown keys are refused."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__}: expected an object of fields, got "
                             f"{type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)} (fields: "
                             f"{', '.join(sorted(known))})")
        return cls(**d)

    def needs(self, workload) -> dict:
        """Depth of each memory in :attr:`DEPTHS` that ``workload`` needs on this config."""
        raise NotImplementedError

    @classmethod
    def fit(cls, workload, base=None, **fields):
        """A config whose memories hold ``workload``.

        ``fields`` are taken as given. Every other depth in :attr:`DEPTHS` is ``base``'s
        where that holds the workload, else the power of two at or above the need; without
        ``base`` each such depth is just that power of two. ``workload`` is what the
        engine's :meth:`needs` takes, or a dict of needs already worked out.
        """
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
        probe = cls._probe(base, fields)
        needs = dict(workload) if isinstance(workload, dict) else probe.needs(workload)
        stray = sorted(set(needs) - set(cls.DEPTHS))
        if stray:
            raise ValueError(f"{cls.__name__}.fit: {', '.join(stray)} is not a memory depth "
                             f"(depths: {', '.join(cls.DEPTHS)})")
        sized = {}
        for name, need in needs.items():
            if name in fields:
                continue
            have = getattr(base, name) if base is not None else 1
            sized[name] = have if need <= have else pow2_at_least(need)
        return cls._sized(base, {**sized, **fields})

    @classmethod
    def _probe(cls, base, fields):
        """A valid config with ``fields`` to measure the workload on."""
        return (base or cls()).replace(**fields)

    @classmethod
    def _sized(cls, base, fields):
        return (base or cls()).replace(**fields)
