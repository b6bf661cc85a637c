"""Just-in-time approval of held events: pure decision logic (rules), state and views, effects.

The decide agent (``agents/decide.py``) and the web API (``pipeline/console``) share these functions,
so the API's pre-validation and the agent's re-verification are the same checks.
"""
