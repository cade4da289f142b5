"""graphrec's composition root: configuration, the CLI and the wiring of the other packages."""

import warnings

# torch_geometric still calls torch.jit.script at import time; the warning says nothing to users.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
