"""The network edges: worker bridge, HTTP listener, protocol models, assembly."""
