import sys

from llm_batch_client.cli import main

sys.exit(main())
