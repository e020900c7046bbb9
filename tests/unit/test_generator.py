import json

from simulation.synthetic import GeneratorConfig, generate


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    config = GeneratorConfig(users=40, items=30, days=2, seed=7)
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    generate(GeneratorConfig(users=40, items=30, days=2, seed=8), tmp_path / "c")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")


def test_layout_and_planted_truth(tmp_path):
    summary = generate(GeneratorConfig(users=50, items=40, days=2, seed=1), tmp_path)
    hours = sorted((tmp_path / "events").glob("date=*/hour=*/events.jsonl"))
    assert hours, "no hourly partitions written"
    lines = sum(len(p.read_text().splitlines()) for p in hours)
    assert lines == summary["event_lines"]
    truth = json.loads((tmp_path / "truth" / "user_tastes.json").read_text())
    assert len(truth) == 50
    assert all(len(t["favourite_categories"]) == 2 for t in truth)
    header = (tmp_path / "reference" / "users.csv").read_text().splitlines()[0]
    assert "consent_email" in header
    assert "timezone" in header


def test_purchases_follow_planted_tastes(tmp_path):
    generate(GeneratorConfig(users=60, items=80, days=3, seed=3, malformed_share=0.0), tmp_path)
    truth = {t["user_id"]: t for t in json.loads((tmp_path / "truth" / "user_tastes.json").read_text())}
    import csv

    category = {
        row["item_id"]: row["category"] for row in csv.DictReader((tmp_path / "reference" / "items.csv").open())
    }
    in_taste = total = 0
    for path in (tmp_path / "events").rglob("events.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("event_type") == "view" and not truth[event["user_id"]]["is_bot"]:
                total += 1
                in_taste += category[event["item_id"]] in truth[event["user_id"]]["favourite_categories"]
    assert total > 100
    assert in_taste / total > 0.75
