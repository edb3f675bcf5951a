"""The demo tenant: its FAQ (faq.jsonl), its routing policy (routing.yaml) and its team."""

from pathlib import Path

import yaml

SYNONYMS = Path(__file__).resolve().parent / "synonyms.yaml"


def synonym_groups() -> list[list[str]]:
    """The demo shop's curated Chinese synonym groups (synonyms.yaml), as the editor's are."""
    groups = yaml.safe_load(SYNONYMS.read_text(encoding="utf-8"))
    return [[str(term) for term in group] for group in groups]
