from errands.cli.main import main

main()
