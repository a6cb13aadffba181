"""Delivery: running campaigns over SMTP — the engine (claim, pace, render, send, classify,
record, emit), pooled SMTP connections, leases and the final report. Above pacing, compose,
store, config and sandbox; beneath the CLI, the service and :mod:`mailpacer.api`.
"""
