"""The parser service: a thin entry point; the logic lives in the datatorag package."""
