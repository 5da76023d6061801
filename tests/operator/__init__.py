"""Tests of the operator: render, parity with helm, the CRD, the resource model and the CLI."""
