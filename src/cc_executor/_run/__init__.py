"""The run layer: options, results and running agent CLIs."""
