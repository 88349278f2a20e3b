"""The connector service: thin entry point; the logic lives in libs/."""
