from bench.target.cli import main

main()
