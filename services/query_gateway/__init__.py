"""The query_gateway service: thin entry point; the logic lives in libs/."""
