"""Parsing helpers of ``robostack.params`` beyond the node-parameter dataclasses (those are pinned in test_node.py)."""

from robostack.params import comma_list


def test_comma_list_strips_items_and_drops_empty_ones():
    assert comma_list(" front, wrist,,") == ("front", "wrist")
    assert comma_list("*.x,*.y") == ("*.x", "*.y")
    assert comma_list("") == () and comma_list(" , ") == ()
