"""hrf's test suite (a package, so ``pytest`` from anywhere finds ``tests.helpers``)."""
