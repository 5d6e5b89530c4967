from midway.cli.app import main

main()
