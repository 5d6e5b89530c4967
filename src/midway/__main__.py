from midway.cli.commands import main

main()
