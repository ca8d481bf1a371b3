"""The embedded chat model: llama.cpp (xllamacpp) as a semantic-kernel chat service, its tiers, the model
families' profiles, cache and threads."""
