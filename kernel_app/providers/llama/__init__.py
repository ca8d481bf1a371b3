"""The embedded chat model: llama.cpp (xllamacpp) as a semantic-kernel chat service, its tiers, cache and threads."""
