"""file_id registry: ids survive reruns and are never handed out twice."""

from archive_twins.deliver.aggregate import assign_file_ids


def test_new_paths_numbered_in_order():
    ids, nxt = assign_file_ids(["b", "a", "c"], {}, 1)
    assert ids == {"a": 1, "b": 2, "c": 3} and nxt == 4


def test_existing_ids_kept_and_removed_not_reused():
    ids, nxt = assign_file_ids(["a", "c", "d", "0"], {"a": 1, "b": 2, "c": 3}, 4)
    assert ids == {"a": 1, "c": 3, "0": 4, "d": 5}
    assert nxt == 6
    again, _ = assign_file_ids(["b"], ids, nxt)
    assert again == {"b": 6}
