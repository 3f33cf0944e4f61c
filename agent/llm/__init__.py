"""Chat models for the LLM planner: any LangChain chat model by spec, or a local Hugging Face model."""
