"""The HTTP API (errands serve): a FastAPI app made by `create_app(settings)`; it reaches jobs only through
errands.client and accounts through errands.accounts."""
