"""A name -> class table filled by a decorator: the networks (asr_kd.nets) and the decoders
(asr_kd.decode) register themselves in one each."""

from __future__ import annotations


class Registry:
    def __init__(self, kind: str):
        self.kind, self._classes = kind, {}

    def register(self, name: str):
        """Class decorator: register the class under `name` (once)."""
        def deco(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} name '{name}' registered twice")
            self._classes[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __getitem__(self, name: str):
        return self._classes[name]
