"""The LLM's tools: end_call, and cold and warm transfer to configured destinations.

agent.py gives them to the agent. They ask the call's lifecycle (lifecycle.py) before
they act: one transfer at a time, no goodbye during a transfer, nothing after a handoff.
"""
