"""The LLM sidecar: explanations and research briefs written by a model, never in the signal's path.

``prompt`` builds the two channels (fixed instructions; untrusted facts and news in a delimited
data section), ``providers`` speaks to OpenAI, Anthropic and Perplexity through their official
SDKs, ``answers`` validates the structured reply (Pydantic), and ``sidecar`` runs the
``explain`` role: cache, call, check citations against the store, fall back to the template.
"""
