from kernel_app.cli.main import main

main()
