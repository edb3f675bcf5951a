"""Front-line bot (rasa-sdk actions); arrives with issue #4."""
