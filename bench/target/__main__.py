from bench.cli import target_main

target_main()
