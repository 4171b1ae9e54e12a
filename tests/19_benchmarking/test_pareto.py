"""Task 19.5: the Pareto front (lower cost, higher score) on hand-made points, ties and properties."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.benchmarking import pareto_front

values = st.integers(0, 6).map(float)  # few distinct values: many ties
points = st.lists(st.tuples(values, values), max_size=12)


def dominates(p, q):
    return p[0] <= q[0] and p[1] >= q[1] and (p[0] < q[0] or p[1] > q[1])


@pytest.mark.task("19.5")
@pytest.mark.parametrize("costs, scores, front", [
    ([1, 2, 3], [0.7, 0.8, 0.9], [0, 1, 2]),               # a clean trade-off: all on the front
    ([1, 2, 3], [0.9, 0.8, 0.7], [0]),                      # cheapest is also best: it dominates
    ([2, 1], [0.8, 0.8], [1]),                               # same score, higher cost: dominated
    ([1, 1], [0.8, 0.9], [1]),                               # same cost, lower score: dominated
    ([1, 1], [0.8, 0.8], [0, 1]),                            # exact tie: neither dominates
    ([3, 1, 2, 2, 4], [0.9, 0.5, 0.7, 0.7, 0.9], [0, 1, 2, 3]),  # tie on the front; 4 dominated by 0
    ([5, 4, 3, 2, 1], [0.1, 0.2, 0.3, 0.4, 0.5], [4]),
    ([], [], []),
    ([7.5], [0.2], [0]),
])
def test_hand_made_points(costs, scores, front):
    assert pareto_front(costs, scores) == front


@pytest.mark.task("19.5")
def test_variants_like_table():
    # Bytes and accuracy of five variants: the three float ones are dominated by int8
    # (fewer bytes, at least as accurate); int8 and pruned+int8 trade size for accuracy.
    costs = [1_204_264, 1_204_264, 1_204_264, 306_178, 46_818]
    scores = [0.93, 0.90, 0.85, 0.93, 0.90]
    assert pareto_front(costs, scores) == [3, 4]


@pytest.mark.task("19.5")
@given(points)
def test_front_is_exactly_the_undominated_points(pts):
    front = pareto_front([p[0] for p in pts], [p[1] for p in pts])
    assert front == sorted(set(front))
    for i, p in enumerate(pts):
        beaten = any(dominates(q, p) for q in pts)
        assert (i in front) == (not beaten), (i, p, pts)
    if pts:
        assert front  # a non-empty set always has an undominated point
        # every dominated point is beaten by a point on the front
        for i in set(range(len(pts))) - set(front):
            assert any(dominates(pts[j], pts[i]) for j in front)


@pytest.mark.task("19.5")
@given(points, st.data())
def test_permuting_points_permutes_the_front(pts, data):
    order = data.draw(st.permutations(range(len(pts))))
    front = set(pareto_front([p[0] for p in pts], [p[1] for p in pts]))
    moved = [pts[i] for i in order]
    moved_front = pareto_front([p[0] for p in moved], [p[1] for p in moved])
    assert {order[k] for k in moved_front} == front


@pytest.mark.task("19.5")
@given(points)
def test_duplicating_a_point_keeps_its_membership(pts):
    if not pts:
        return
    doubled = pts + [pts[0]]
    front = pareto_front([p[0] for p in doubled], [p[1] for p in doubled])
    assert (0 in front) == (len(pts) in front)


def test_errors():
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        pareto_front([1, 2], [0.5])
    with pytest.raises(ValueError, match=r"costs must be finite numbers, got \[nan\]"):
        pareto_front([1, float("nan")], [0.5, 0.6])
    with pytest.raises(ValueError, match=r"scores must be finite numbers, got \[inf\]"):
        pareto_front([1, 2], [0.5, float("inf")])
