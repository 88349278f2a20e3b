"""LLM provider adapters of the generator port that speak HTTP themselves (OpenAI-compatible
Chat Completions). Bedrock lives with the other AWS adapters (``adapters.aws.bedrock``)."""
