"""Test support code shared by the integration, end-to-end and browser suites."""
