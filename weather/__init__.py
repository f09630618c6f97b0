"""Weather office: raises and clears cold alerts."""
