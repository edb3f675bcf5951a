"""The demo tenant: its FAQ (faq.jsonl), its routing policy (routing.yaml) and its team."""
