"""Energy-aware offloading of MDS-coded subtasks: model, policies, simulator, experiments."""
