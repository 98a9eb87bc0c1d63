@S-1
Feature: Greeting
  As a visitor I want to be greeted by name so that I feel welcome.

  Scenario: A visitor is greeted by name
    Given the service is running
    When I ask for a greeting for "Ada"
    Then the answer is "Hello, Ada!"

  Scenario: A stranger is greeted as the world
    Given the service is running
    When I ask for a greeting without a name
    Then the answer is "Hello, world!"
