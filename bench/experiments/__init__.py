"""The experiments whose tables chose a default: modules, feature scaling, head settings."""
