"""``request.segments`` behaves as the frozenset of the visitor's segments, computed once."""

import pytest

from personalization.visitor import LazySegments


class Visitor:
    def __init__(self, slugs):
        self.calls = 0
        self._slugs = frozenset(slugs)

    def segments(self):
        self.calls += 1
        return self._slugs


def test_behaves_as_the_frozenset():
    visitor = Visitor({"a", "b"})
    lazy = LazySegments(visitor)
    assert visitor.calls == 0  # nothing computed until used
    assert "a" in lazy and "c" not in lazy
    assert len(lazy) == 2 and bool(lazy) and sorted(lazy) == ["a", "b"]
    assert lazy == {"a", "b"} and lazy == frozenset({"a", "b"}) and lazy != {"a"}
    assert lazy & {"a", "z"} == {"a"} and {"a", "z"} & lazy == {"a"}
    assert lazy | {"z"} == {"a", "b", "z"} and {"z"} | lazy == {"a", "b", "z"}
    assert lazy - {"a"} == {"b"} and {"a", "z"} - lazy == {"z"}
    assert lazy ^ {"a", "z"} == {"b", "z"}
    assert lazy <= {"a", "b", "c"} and lazy < {"a", "b", "c"} and lazy >= {"a"} and lazy > {"a"}
    assert lazy.issubset({"a", "b"}) and lazy.union({"c"}) == {"a", "b", "c"}
    assert frozenset(lazy) == {"a", "b"} and repr(lazy) == repr(frozenset({"a", "b"}))
    assert not LazySegments(Visitor(()))


def test_is_not_hashable_and_hides_private_names():
    lazy = LazySegments(Visitor({"a"}))
    with pytest.raises(TypeError):
        hash(lazy)
    with pytest.raises(AttributeError):
        lazy._private  # noqa: B018
