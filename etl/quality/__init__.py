"""The data-quality gate: Great Expectations suites per mart plus SQL invariants, run on candidate data."""
