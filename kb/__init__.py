"""Knowledge base (Whoosh-indexed FAQ articles); arrives with issue #3."""
