"""Where model weights come from: converters from shipped formats to this project's torch modules."""
