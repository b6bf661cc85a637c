"""Field paths: parsing, matching at any depth, in-place transforms and DROP."""

from __future__ import annotations

import copy

import pytest

from pipeline.paths import DROP, PathError, compile_path

DOC = {
    "user": {"email": "a@example.com", "name": "Ann"},
    "items": [{"card": "4111", "sku": 1}, {"card": "5500", "sku": 2, "meta": {"email": "b@example.com"}}],
    "meta": {"source": "web", "ip": "10.0.0.1"},
    "headers": {"x.trace.id": "t-1", "x-user": "u"},
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("user.email", ["user.email"]),
        ("items[*].card", ["items[0].card", "items[1].card"]),
        ("items[0].card", ["items[0].card"]),
        ("items[-1].sku", ["items[1].sku"]),
        ("**.email", ["items[1].meta.email", "user.email"]),
        ("meta.*", ["meta.ip", "meta.source"]),
        ("items.*.sku", ["items[0].sku", "items[1].sku"]),
        ('headers["x.trace.id"]', ['headers["x.trace.id"]']),
        ("headers.x-user", ["headers.x-user"]),
        ("nothing.here", []),
        ("items[7].card", []),
        ("user.email.deeper", []),
    ],
)
def test_when_path_is_applied_then_it_finds_the_concrete_paths(expr, expected):
    assert sorted(path for path, _ in compile_path(expr).find(DOC)) == sorted(expected)


def test_when_transform_runs_then_values_change_in_place_and_matches_are_counted():
    doc = copy.deepcopy(DOC)
    seen = []
    count = compile_path("items[*].card").transform(doc, lambda p, v: seen.append(p) or "****")
    assert count == 2 and sorted(seen) == ["items[0].card", "items[1].card"]
    assert [i["card"] for i in doc["items"]] == ["****", "****"]


def test_when_function_returns_drop_then_keys_and_elements_are_deleted():
    doc = copy.deepcopy(DOC)
    assert compile_path("**.email").transform(doc, lambda p, v: DROP) == 2
    assert "email" not in doc["user"] and "email" not in doc["items"][1]["meta"]
    doc = {"tags": ["a", "b", "c", "d"]}
    assert compile_path("tags[*]").transform(doc, lambda p, v: DROP if v in "bd" else v) == 4
    assert doc == {"tags": ["a", "c"]}


def test_when_matches_nest_then_inner_ones_are_transformed_first():
    doc = {"email": {"email": "x"}}
    order = []
    compile_path("**.email").transform(doc, lambda p, v: order.append(p) or "m")
    assert order == ["email.email", "email"] and doc == {"email": "m"}


def test_when_document_is_a_list_then_paths_start_with_an_index():
    doc = [{"x": 1}, {"x": 2}]
    assert compile_path("[*].x").transform(doc, lambda p, v: v * 10) == 2
    assert doc == [{"x": 10}, {"x": 20}]


def test_when_document_is_very_deep_then_any_depth_search_does_not_recurse():
    doc: dict = {"email": "x"}
    for _ in range(5000):
        doc = {"a": doc}
    assert compile_path("**.email").transform(doc, lambda p, v: "m") == 1


def test_when_deep_wildcards_repeat_then_each_value_matches_once():
    doc = {"a": {"b": {"email": "x"}}}
    assert compile_path("**.**.email").transform(doc, lambda p, v: "m") == 1


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "non-empty"),
        ("a..b", "empty segment"),
        ("a.", "ends with '.'"),
        ("a[", "never closed"),
        ("a[x]", "expected [*]"),
        ("**", "must be followed"),
        ("a.**", "must be followed"),
        ("a**b", "expected '.' or '['"),
        ("**b", "'**' must stand alone"),
        (" a", "whitespace"),
    ],
)
def test_when_path_is_malformed_then_error_names_expression_and_fault(expr, fragment):
    with pytest.raises(PathError) as info:
        compile_path(expr)
    assert repr(expr) in str(info.value) and fragment in str(info.value)
